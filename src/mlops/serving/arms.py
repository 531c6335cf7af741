"""A/B arms: each entity is assigned, per job, to ``treatment`` (the champion answers) or
``control`` (the heuristic answers) by a hash of the salt, the job and the entity's id, so the
same entity lands in the same arm in every replica, process and Python version, with no state
to share or invalidate. ``ab_treatment_share[job]`` sets the treatment's share (1.0, the
default, means no experiment: everyone is treated); changing ``ab_salt`` reshuffles the arms.

The id is what the endpoint says (``Endpoint.unit``): the entity, or the prediction's subject.
"""

from __future__ import annotations

from hashlib import blake2b

TREATMENT, CONTROL = "treatment", "control"
_SCALE = float(1 << 64)


def position(salt: str, job: str, entity_id: str) -> float:
    """The entity's uniform position in [0, 1) for this job and salt (64 bits of BLAKE2b)."""
    # The unit separator keeps ("a", "bc") and ("ab", "c") apart.
    digest = blake2b(f"{salt}\x1f{job}\x1f{entity_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def assign(share: float, salt: str, job: str, entity_id: str) -> str:
    """``treatment`` for the first ``share`` of positions, else ``control``."""
    if share >= 1.0:  # no experiment: no hash on the hot path
        return TREATMENT
    if share <= 0.0:
        return CONTROL
    return TREATMENT if position(salt, job, entity_id) < share else CONTROL
