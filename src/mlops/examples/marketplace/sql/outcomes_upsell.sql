-- Accuracy monitor, upsell outcomes: the offer impressions of the customers given (keys) shown
-- from start to end (both inclusive), times as epoch seconds; accepted = 1 when the customer
-- took the offer.
SELECT
    i.customer_id,
    i.offer_id,
    unixepoch(i.shown_at) AS shown_epoch,
    CASE WHEN i.accepted THEN 1 ELSE 0 END AS accepted
FROM offer_impressions i
WHERE i.customer_id IN :keys
  AND i.shown_at >= :start AND i.shown_at <= :end
