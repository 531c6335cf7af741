-- Upsell labels: every offer impression shown from start (inclusive) to end (exclusive),
-- with the offer's own attributes; label = 1 when the customer took the offer.
SELECT
    i.impression_id,
    i.customer_id,
    i.shown_at AS event_time,
    f.offer_id,
    f.category AS offer_category,
    CAST(f.discount_pct AS DOUBLE PRECISION) AS discount_pct,
    CAST(f.price AS DOUBLE PRECISION) AS offer_price,
    CASE WHEN i.accepted THEN 1 ELSE 0 END AS label
FROM offer_impressions i
JOIN offers f ON f.offer_id = i.offer_id
WHERE i.shown_at >= :start AND i.shown_at < :end
