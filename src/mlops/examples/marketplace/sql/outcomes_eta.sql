-- Accuracy monitor, ETA outcomes: the deliveries given (keys) delivered by now, with the actual
-- minutes from dispatch to delivery (the training label, see labels_eta.sql). Deliveries
-- still in flight have no outcome yet.
SELECT
    d.delivery_id,
    (unixepoch(d.delivered_at) - unixepoch(d.dispatched_at)) / 60.0 AS minutes
FROM deliveries d
WHERE d.delivery_id IN :keys
  AND d.delivered_at IS NOT NULL AND d.delivered_at <= :now
