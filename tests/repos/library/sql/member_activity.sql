-- One row per member who joined before as_of, for every point of as_of_grid.
SELECT
    g.as_of,
    m.member_no,
    (SELECT COUNT(*) FROM loans l
      WHERE l.borrower = m.member_no AND l.taken >= g.since_30d AND l.taken < g.as_of)
      AS loans_30d,
    (SELECT COUNT(*) FROM loans l
      WHERE l.borrower = m.member_no AND l.taken >= g.since_90d AND l.taken < g.as_of)
      AS loans_90d,
    (g.as_of_epoch - unixepoch((SELECT MAX(l.taken) FROM loans l
      WHERE l.borrower = m.member_no AND l.taken < g.as_of))) / 86400.0 AS idle_days,
    (g.as_of_epoch - unixepoch(m.joined)) / 86400.0 AS member_days
FROM as_of_grid g
JOIN members m ON m.joined < g.as_of
