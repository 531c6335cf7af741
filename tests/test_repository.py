"""Feature repositories: the bundled example, every problem of an invalid one with its file and
line, ``mlops init``, ``--repo`` and ``mlops jobs``, and the engine/repository boundary."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from mlops import repository
from mlops.errors import ConfigError, InputError
from mlops.repository.scaffold import init
from tests.cli_support import invoke
from tests.repo_support import REPO, copy_example, edit

SRC = Path(__file__).resolve().parents[1] / "src" / "mlops"


def test_the_bundled_example_declares_the_runbook_jobs():
    assert REPO.names == ("churn", "upsell", "eta", "ticket")
    churn, upsell, eta = (REPO.job(n) for n in REPO.names[:3])
    assert (churn.task, upsell.task, eta.task) == ("binary", "binary", "regression")
    assert churn.label.kind == "snapshot" and churn.label.horizon == timedelta(days=30)
    assert upsell.label.kind == eta.label.kind == "event"
    assert eta.model_inputs[-5:] == ["zone", "distance_km", "item_count", "hour", "weekday"]
    assert eta.categorical == ["zone"] and upsell.categorical == [
        "top_category_90d",
        "plan",
        "offer_category",
    ]
    assert churn.model_params["num_leaves"] == 7 and not upsell.model_params
    assert eta.drift_window == timedelta(days=1) and churn.drift_window is None
    assert REPO.windows["since_90d"] == timedelta(days=90)
    assert REPO.windows["until_30d"] == -timedelta(days=30)
    assert "as_of_grid" in REPO.sql(churn.view)


def _line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_every_problem_is_reported_with_its_file_line_and_fix(tmp_path):
    root = copy_example(tmp_path)
    churn, eta = root / "jobs" / "churn.yaml", root / "jobs" / "eta.yaml"
    edit(churn, "ttl: 36h", "ttl: 36 hours")
    edit(churn, "    dtype: int\n", "    dtype: integer\n")
    edit(churn, "backfill_every: 1d", "backfill_every: 1d\nbackfil_evry: 2d")
    edit(churn, "function: churn_risk", "function: churn_risky")
    edit(eta, "view: ml_eta_features", "view: ml_eta_featurez")
    edit(eta, "inputs: [distance_km, zone]", "inputs: [distance_km, zone, speed]")
    edit(root / "jobs" / "upsell.yaml", "ttl: 12h", "ttl: [12h")
    with pytest.raises(repository.RepositoryInvalid) as caught:
        repository.load(root)
    problems = caught.value.problems
    text = "\n".join(problems)
    assert f"jobs/churn.yaml:{_line_of(churn, 'ttl: 36 hours')}: ttl: cannot read duration" in text
    assert f"jobs/churn.yaml:{_line_of(churn, 'dtype: integer')}: features.1.dtype" in text
    assert f"jobs/churn.yaml:{_line_of(churn, 'backfil_evry')}: unknown key backfil_evry" in text
    assert "jobs/upsell.yaml:" in text and "not valid YAML" in text
    # Checks across files run on what validated: the SQL file and heuristic inputs of eta.
    assert "jobs/eta.yaml: view 'ml_eta_featurez': there is no sql/ml_eta_featurez.sql" in text
    assert "heuristic input 'speed' is neither a feature nor an input" in text
    assert len(problems) == 6, problems
    assert caught.value.exit_code == 2 and "fix each file" in caught.value.hint


def test_a_heuristic_that_does_not_exist_or_does_not_import_is_named(tmp_path):
    root = copy_example(tmp_path)
    edit(root / "jobs" / "churn.yaml", "function: churn_risk", "function: churn_risky")
    with pytest.raises(repository.RepositoryInvalid, match="'churn_risky' is not a function"):
        repository.load(root)
    edit(root / "heuristics.py", "EPS = 1e-4", "EPS = 1 / 0")
    with pytest.raises(repository.RepositoryInvalid) as caught:
        repository.load(root)
    line = _line_of(root / "heuristics.py", "EPS = 1 / 0")
    assert caught.value.problems == [
        f"heuristics.py:{line}: importing it failed: ZeroDivisionError: division by zero "
        "(fix the code there)"
    ]


def test_cross_checks_names_files_and_ranges(tmp_path):
    root = copy_example(tmp_path)
    (root / "jobs" / "eta.yaml").rename(root / "jobs" / "delivery.yaml")
    edit(root / "jobs" / "churn.yaml", "range: [0, 3]", "range: [3, 0]")
    edit(root / "jobs" / "churn.yaml", "kind: snapshot", "kind: snapshot\n  horizon: 0d")
    edit(root / "jobs" / "churn.yaml", "  horizon: 30d # the label looks 30 days past as_of\n", "")
    with pytest.raises(repository.RepositoryInvalid) as caught:
        repository.load(root)
    text = "\n".join(caught.value.problems)
    assert "declares job 'eta': name the file jobs/eta.yaml" in text
    assert "order_trend: range min 3 > max 0" in text
    assert "a snapshot label looks past its as_of" in text
    assert "(not listed: delivery; no file: eta)" in text


def test_a_folder_without_a_repository_says_how_to_make_one(tmp_path):
    with pytest.raises(ConfigError, match="mlops init DIR"):
        repository.load(tmp_path)


def test_init_copies_a_loadable_repository_and_refuses_a_used_folder(tmp_path):
    repo = init(tmp_path / "mine")
    assert repo.names == REPO.names and (repo.path / "sql" / "labels_churn.sql").is_file()
    assert repo.job("eta").heuristic.row({"distance_km": 3.4, "zone": "Z01"}) == pytest.approx(
        REPO.job("eta").heuristic.row({"distance_km": 3.4, "zone": "Z01"})
    )
    with pytest.raises(InputError, match="not an empty folder"):
        init(tmp_path / "mine")


def test_the_cli_inits_lists_and_takes_repo_from_the_flag(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    code, out, _ = invoke(capsys, "init", str(tmp_path / "mine"), flat=True)
    assert code == 0 and "jobs: churn, upsell, eta" in out
    edit(tmp_path / "mine" / "repository.yaml", "name: marketplace", "name: mine")
    code, out, _ = invoke(capsys, "--repo", str(tmp_path / "mine"), "jobs", "list", flat=True)
    assert code == 0 and "4 job(s) in 'mine'" in out
    edit(tmp_path / "mine" / "jobs" / "churn.yaml", "ttl: 36h", "ttl: soon")
    code, _, err = invoke(capsys, "--repo", str(tmp_path / "mine"), "jobs", "list", flat=True)
    assert code == 2 and "jobs/churn.yaml:" in err and "cannot read duration 'soon'" in err
    code, _, err = invoke(capsys, "init", str(tmp_path / "mine"), flat=True)
    assert code == 2 and "not an empty folder" in err


def test_jobs_describe_shows_the_declaration_and_the_state(migrated, capsys, monkeypatch):
    monkeypatch.setenv("MLOPS_HOME", str(migrated.settings.home))
    monkeypatch.setenv("MLOPS_DATABASE_URL", migrated.settings.store_url)
    code, out, _ = invoke(capsys, "jobs", "describe", "eta", flat=True)
    assert code == 0, out
    assert "label sql/labels_eta.sql (event" in out and "heuristic heuristics.py:eta_sla" in out
    assert "latest ingestion: none" in out and "no values yet" in out and "champion: none" in out
    code, _, err = invoke(capsys, "jobs", "describe", "fraud", flat=True)
    assert code == 2 and "unknown job 'fraud'" in err


# --- the engine knows no job ----------------------------------------------------------------

# What only the example repository may name: its jobs, its warehouse tables and views.
MARKETPLACE = re.compile(
    r"\b(churn|upsell|eta|ticket|customers|customer_id|deliveries|delivery_id|orders|offers|"
    r"offer_id|offer_impressions|support_tickets|ml_(churn|upsell|eta|ticket)_features)\b"
)


def test_no_engine_module_names_a_job_or_a_warehouse_table():
    naming = {
        path.relative_to(SRC).as_posix()
        for path in SRC.rglob("*.py")
        if not path.relative_to(SRC).as_posix().startswith("examples/")
        and MARKETPLACE.search(path.read_text())
    }
    assert naming == set(), "these modules name the example repository: move that into it"


def test_the_boundary_check_finds_a_name(tmp_path):
    # The grep above must be able to fail: the example's own modules match it.
    assert MARKETPLACE.search((SRC / "examples" / "marketplace" / "answers.py").read_text())
