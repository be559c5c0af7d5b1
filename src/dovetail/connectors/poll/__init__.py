"""``poll`` source: REST polling on a schedule, with pagination and an incremental watermark."""
