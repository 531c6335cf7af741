-- A/B guardrail, ETA outcomes: the deliveries given (keys) delivered by now, and whether each
-- arrived after the promise the customer was given (late = delivered_at > promised_at, the
-- feature views' definition; see jobs/eta.yaml, guardrail).
SELECT
    d.delivery_id,
    CASE WHEN d.delivered_at > d.promised_at THEN 1 ELSE 0 END AS late
FROM deliveries d
WHERE d.delivery_id IN :keys
  AND d.delivered_at IS NOT NULL AND d.delivered_at <= :now
