-- ml_ticket_features: one row per customer with an order placed in the 90 days before as_of,
-- for every as_of point in as_of_grid. Only warehouse rows strictly before as_of count.
-- as_of_grid supplies as_of, as_of_epoch, since_30d and since_90d (see ml_churn_features.sql).
WITH active AS (
    SELECT g.as_of, g.as_of_epoch, g.since_30d, g.since_90d, o.customer_id,
           SUM(CASE WHEN o.status = 'completed' AND o.placed_at >= g.since_30d
                    THEN 1 ELSE 0 END) AS orders_30d,
           SUM(CASE WHEN o.status = 'cancelled' AND o.placed_at >= g.since_30d
                    THEN 1 ELSE 0 END) AS cancelled_30d
    FROM as_of_grid g
    JOIN orders o ON o.placed_at >= g.since_90d AND o.placed_at < g.as_of
    GROUP BY g.as_of, g.as_of_epoch, g.since_30d, g.since_90d, o.customer_id
)
SELECT
    a.as_of,
    a.customer_id,
    a.orders_30d,
    a.cancelled_30d,
    (
        SELECT COUNT(*) FROM deliveries d JOIN orders o ON o.order_id = d.order_id
        WHERE o.customer_id = a.customer_id
          AND d.delivered_at >= a.since_30d AND d.delivered_at < a.as_of
          AND d.delivered_at > d.promised_at
    ) AS late_30d,
    (
        SELECT COUNT(*) FROM support_tickets t
        WHERE t.customer_id = a.customer_id
          AND t.opened_at >= a.since_30d AND t.opened_at < a.as_of
    ) AS tickets_30d,
    (
        SELECT COUNT(*) FROM support_tickets t
        WHERE t.customer_id = a.customer_id
          AND t.opened_at >= a.since_90d AND t.opened_at < a.as_of
    ) AS tickets_90d,
    (a.as_of_epoch - unixepoch((
        SELECT MAX(t.opened_at) FROM support_tickets t
        WHERE t.customer_id = a.customer_id AND t.opened_at < a.as_of
    ))) / 86400.0 AS days_since_last_ticket,
    c.plan
FROM active a
JOIN customers c ON c.customer_id = a.customer_id
