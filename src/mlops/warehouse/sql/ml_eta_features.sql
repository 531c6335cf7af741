-- ml_eta_features: one row per delivery zone seen before as_of, for every as_of point
-- in as_of_grid. Only deliveries dispatched strictly before as_of count, and only
-- outcomes (delivered_at) strictly before as_of are read as known.
-- Deliveries are assumed to finish within 3 hours of dispatch (the open-delivery and
-- completion windows look back that far so the index on (zone, dispatched_at) bounds them).
-- as_of_grid and unixepoch: see ml_churn_features.sql.
WITH zones AS (
    SELECT zone, MIN(dispatched_at) AS first_seen FROM deliveries GROUP BY zone
),
base AS (
    SELECT g.as_of, g.since_1h, g.since_2h, g.since_3h, g.since_5h, z.zone
    FROM as_of_grid g
    JOIN zones z ON z.first_seen < g.as_of
),
dispatched AS (
    SELECT b.as_of, b.zone,
           COUNT(*) AS deliveries_1h,
           COUNT(DISTINCT d.courier_id) AS active_couriers_1h,
           AVG(d.distance_km) AS avg_distance_km_1h
    FROM base b
    JOIN deliveries d
      ON d.zone = b.zone AND d.dispatched_at >= b.since_1h AND d.dispatched_at < b.as_of
    GROUP BY b.as_of, b.zone
),
completed AS (
    SELECT b.as_of, b.zone,
           AVG((unixepoch(d.delivered_at) - unixepoch(d.dispatched_at)) / 60.0) AS avg_minutes,
           AVG((unixepoch(d.delivered_at) - unixepoch(d.dispatched_at)) / 60.0
               / CASE WHEN d.distance_km > 0.1 THEN d.distance_km ELSE 0.1 END)
               AS avg_minutes_per_km,
           AVG(CASE WHEN d.delivered_at > d.promised_at THEN 1.0 ELSE 0.0 END) AS late_share
    FROM base b
    JOIN deliveries d
      ON d.zone = b.zone AND d.dispatched_at >= b.since_5h AND d.dispatched_at < b.as_of
     AND d.delivered_at >= b.since_2h AND d.delivered_at < b.as_of
    GROUP BY b.as_of, b.zone
),
open_now AS (
    SELECT b.as_of, b.zone, COUNT(*) AS open_deliveries
    FROM base b
    JOIN deliveries d
      ON d.zone = b.zone AND d.dispatched_at >= b.since_3h AND d.dispatched_at < b.as_of
     AND (d.delivered_at IS NULL OR d.delivered_at >= b.as_of)
    GROUP BY b.as_of, b.zone
)
SELECT
    b.as_of,
    b.zone,
    COALESCE(p.deliveries_1h, 0) AS deliveries_1h,
    c.avg_minutes AS avg_delivery_minutes_2h,
    c.avg_minutes_per_km AS avg_minutes_per_km_2h,
    c.late_share AS late_share_2h,
    COALESCE(o.open_deliveries, 0) AS open_deliveries,
    COALESCE(p.active_couriers_1h, 0) AS active_couriers_1h,
    CAST(COALESCE(o.open_deliveries, 0) AS DOUBLE PRECISION)
        / CASE WHEN COALESCE(p.active_couriers_1h, 0) > 0 THEN p.active_couriers_1h ELSE 1 END
        AS courier_load,
    p.avg_distance_km_1h
FROM base b
LEFT JOIN dispatched p ON p.as_of = b.as_of AND p.zone = b.zone
LEFT JOIN completed c ON c.as_of = b.as_of AND c.zone = b.zone
LEFT JOIN open_now o ON o.as_of = b.as_of AND o.zone = b.zone
