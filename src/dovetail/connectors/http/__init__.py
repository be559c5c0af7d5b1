"""HTTP connectors: the ``http`` sink (REST delivery) and the ``http`` source (webhook receiver)."""
