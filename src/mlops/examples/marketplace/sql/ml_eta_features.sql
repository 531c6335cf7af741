-- ml_eta_features: one row per delivery zone seen before as_of, for every as_of point
-- in as_of_grid. Only deliveries dispatched strictly before as_of count, and only
-- outcomes (delivered_at) strictly before as_of are read as known.
-- Deliveries are assumed to finish within 3 hours of dispatch, so one index range of
-- 5 hours per zone and point holds every delivery any of the windows below can use:
-- dispatched in the last 1 h, open (dispatched in the last 3 h, not delivered by as_of),
-- and completed in the last 2 h (hence dispatched in the last 5 h).
-- as_of_grid and unixepoch: see ml_churn_features.sql.
WITH zones AS (
    SELECT zone, MIN(dispatched_at) AS first_seen FROM deliveries GROUP BY zone
),
recent AS (
    SELECT
        g.as_of,
        z.zone,
        SUM(CASE WHEN d.dispatched_at >= g.since_1h THEN 1 ELSE 0 END) AS deliveries_1h,
        COUNT(DISTINCT CASE WHEN d.dispatched_at >= g.since_1h THEN d.courier_id END)
            AS active_couriers_1h,
        AVG(CASE WHEN d.dispatched_at >= g.since_1h THEN d.distance_km END)
            AS avg_distance_km_1h,
        SUM(CASE WHEN d.dispatched_at >= g.since_3h
                  AND (d.delivered_at IS NULL OR d.delivered_at >= g.as_of)
                 THEN 1 ELSE 0 END) AS open_deliveries,
        AVG(CASE WHEN d.delivered_at >= g.since_2h AND d.delivered_at < g.as_of
                 THEN (unixepoch(d.delivered_at) - unixepoch(d.dispatched_at)) / 60.0 END)
            AS avg_delivery_minutes_2h,
        AVG(CASE WHEN d.delivered_at >= g.since_2h AND d.delivered_at < g.as_of
                 THEN (unixepoch(d.delivered_at) - unixepoch(d.dispatched_at)) / 60.0
                      / CASE WHEN d.distance_km > 0.1 THEN d.distance_km ELSE 0.1 END END)
            AS avg_minutes_per_km_2h,
        AVG(CASE WHEN d.delivered_at >= g.since_2h AND d.delivered_at < g.as_of
                 THEN CAST(CASE WHEN d.delivered_at > d.promised_at THEN 1 ELSE 0 END
                           AS DOUBLE PRECISION) END)
            AS late_share_2h
    FROM as_of_grid g
    JOIN zones z ON z.first_seen < g.as_of
    LEFT JOIN deliveries d
      ON d.zone = z.zone AND d.dispatched_at >= g.since_5h AND d.dispatched_at < g.as_of
    GROUP BY g.as_of, z.zone
)
SELECT
    as_of,
    zone,
    deliveries_1h,
    avg_delivery_minutes_2h,
    avg_minutes_per_km_2h,
    late_share_2h,
    open_deliveries,
    active_couriers_1h,
    CAST(open_deliveries AS DOUBLE PRECISION)
        / CASE WHEN active_couriers_1h > 0 THEN active_couriers_1h ELSE 1 END AS courier_load,
    avg_distance_km_1h
FROM recent
