CREATE TABLE IF NOT EXISTS order_facts (
  order_id TEXT PRIMARY KEY,
  customer_id TEXT NOT NULL,
  line_count INTEGER NOT NULL,
  total REAL NOT NULL
);
