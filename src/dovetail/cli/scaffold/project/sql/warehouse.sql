CREATE TABLE IF NOT EXISTS sales_orders (
    external_ref   TEXT PRIMARY KEY,
    customer_email TEXT NOT NULL,
    country        TEXT NOT NULL,
    order_date     TEXT NOT NULL,
    currency       TEXT NOT NULL,
    amount         REAL NOT NULL,
    erp_status     TEXT NOT NULL
);
