"""The ``schedule`` source: a cron trigger that emits one message per tick."""
