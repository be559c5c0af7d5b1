CREATE TABLE IF NOT EXISTS stock_levels (sku TEXT PRIMARY KEY, warehouse TEXT, quantity INTEGER);
