"""Redis streams connectors: the ``redis`` source (consumer group) and ``redis`` sink (XADD).

``connection.py`` holds the settings both share, opens the client and sorts Redis errors
into transient and permanent ones; ``entries.py`` turns stream entries into messages and
messages into entries. ``redis`` is imported only when a component opens.
"""
