-- ETA labels: every delivery dispatched from start (inclusive) to end (exclusive) and
-- delivered before now, with the inputs known when it was requested (zone, distance,
-- items); label = minutes from dispatch to delivery.
SELECT
    d.delivery_id,
    d.zone,
    d.dispatched_at AS event_time,
    d.distance_km,
    o.item_count,
    (unixepoch(d.delivered_at) - unixepoch(d.dispatched_at)) / 60.0 AS label
FROM deliveries d
LEFT JOIN orders o ON o.order_id = d.order_id
WHERE d.dispatched_at >= :start AND d.dispatched_at < :end
  AND d.delivered_at IS NOT NULL AND d.delivered_at < :now
