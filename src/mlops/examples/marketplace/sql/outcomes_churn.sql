-- Accuracy monitor, churn outcomes: every completed order placed from start (inclusive) to end
-- (exclusive), labelled 0 (not churned). A churn prediction's outcome is its customer's first
-- order within 30 days; none is a churn (jobs/churn.yaml, outcome). The engine reads the
-- orders of the predictions' customers only (a key filter around this query).
-- Times as epoch seconds: cheaper to move and parse than text for a million orders.
SELECT
    o.customer_id,
    unixepoch(o.placed_at) AS event_time,
    0 AS label
FROM orders o
WHERE o.status = 'completed'
  AND o.placed_at >= :start AND o.placed_at < :end
