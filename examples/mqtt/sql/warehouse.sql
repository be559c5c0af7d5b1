CREATE TABLE IF NOT EXISTS readings (
  reading_id TEXT PRIMARY KEY,
  plant TEXT NOT NULL,
  machine TEXT NOT NULL,
  temperature REAL NOT NULL,
  measured_at TEXT NOT NULL
);
