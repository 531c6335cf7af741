-- Accuracy monitor, churn outcomes: the completed orders of the customers given (keys) placed
-- from start (inclusive) to end (exclusive). A churn prediction is labelled 1 when none of
-- its customer's orders falls in the 30 days from its logged_at (see monitoring/accuracy.py).
-- Times as epoch seconds: cheaper to move and parse than text for a million orders.
SELECT
    o.customer_id,
    unixepoch(o.placed_at) AS placed_epoch
FROM orders o
WHERE o.customer_id IN :keys
  AND o.status = 'completed'
  AND o.placed_at >= :start AND o.placed_at < :end
