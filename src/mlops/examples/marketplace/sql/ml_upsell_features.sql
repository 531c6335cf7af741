-- ml_upsell_features: one row per customer signed up before as_of, for every as_of
-- point in as_of_grid. Only warehouse rows strictly before as_of count.
-- An offer is accepted or not when it is shown (it goes into the cart with the order),
-- so an impression shown before as_of carries a known outcome.
-- as_of_grid and unixepoch: see ml_churn_features.sql.
-- Single aggregates are correlated subqueries: an index range per customer is cheaper
-- than grouping the whole grid, on SQLite and PostgreSQL alike.
WITH base AS (
    SELECT g.as_of, g.since_90d, c.customer_id, c.plan
    FROM as_of_grid g
    JOIN customers c ON c.signup_at < g.as_of
),
shown AS (
    SELECT b.as_of, b.customer_id, f.category, f.discount_pct,
           CASE WHEN i.accepted THEN 1 ELSE 0 END AS accepted
    FROM base b
    JOIN offer_impressions i
      ON i.customer_id = b.customer_id AND i.shown_at >= b.since_90d AND i.shown_at < b.as_of
    JOIN offers f ON f.offer_id = i.offer_id
),
offer_stats AS (
    SELECT as_of, customer_id,
           COUNT(*) AS impressions_90d,
           SUM(accepted) AS accepted_90d,
           COUNT(DISTINCT CASE WHEN accepted = 1 THEN category END) AS category_breadth_90d,
           AVG(CASE WHEN accepted = 1 THEN discount_pct END) AS avg_accepted_discount_90d,
           SUM(CASE WHEN discount_pct >= 20 THEN 1 ELSE 0 END) AS shown_high,
           SUM(CASE WHEN discount_pct >= 20 THEN accepted ELSE 0 END) AS accepted_high,
           SUM(CASE WHEN discount_pct < 20 THEN 1 ELSE 0 END) AS shown_low,
           SUM(CASE WHEN discount_pct < 20 THEN accepted ELSE 0 END) AS accepted_low
    FROM shown
    GROUP BY as_of, customer_id
)
SELECT
    b.as_of,
    b.customer_id,
    COALESCE(s.impressions_90d, 0) AS impressions_90d,
    CASE WHEN s.impressions_90d > 0
         THEN CAST(s.accepted_90d AS DOUBLE PRECISION) / s.impressions_90d END
        AS acceptance_rate_90d,
    COALESCE(s.accepted_90d, 0) AS accepted_90d,
    (
        SELECT AVG(CAST(o.item_count AS DOUBLE PRECISION)) FROM orders o
        WHERE o.customer_id = b.customer_id AND o.status = 'completed'
          AND o.placed_at >= b.since_90d AND o.placed_at < b.as_of
    ) AS avg_basket_items_90d,
    COALESCE(s.category_breadth_90d, 0) AS category_breadth_90d,
    s.avg_accepted_discount_90d,
    CASE WHEN s.shown_high > 0 AND s.shown_low > 0
         THEN CAST(s.accepted_high AS DOUBLE PRECISION) / s.shown_high
              - CAST(s.accepted_low AS DOUBLE PRECISION) / s.shown_low END
        AS discount_sensitivity_90d,
    (
        SELECT f.category FROM offer_impressions i
        JOIN offers f ON f.offer_id = i.offer_id
        WHERE i.customer_id = b.customer_id AND i.accepted
          AND i.shown_at >= b.since_90d AND i.shown_at < b.as_of
        GROUP BY f.category
        ORDER BY COUNT(*) DESC, f.category
        LIMIT 1
    ) AS top_category_90d,
    b.plan
FROM base b
LEFT JOIN offer_stats s ON s.as_of = b.as_of AND s.customer_id = b.customer_id
