-- Dashboard cohorts of customers: each customer's plan and region (jobs/churn.yaml, cohorts).
SELECT customer_id, plan, region FROM customers
