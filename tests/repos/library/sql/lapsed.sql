-- label = 1 when a member who joined before as_of takes no loan in the 14 days after it;
-- with the member's home branch, the request-time input.
SELECT
    g.as_of,
    m.member_no,
    m.home_branch AS branch,
    CASE WHEN EXISTS (
        SELECT 1 FROM loans l
        WHERE l.borrower = m.member_no AND l.taken >= g.as_of AND l.taken < g.until_14d
    ) THEN 0 ELSE 1 END AS label
FROM as_of_grid g
JOIN members m ON m.joined < g.as_of
