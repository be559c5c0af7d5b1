"""MQTT connectors: the ``mqtt`` source (persistent-session subscriber) and ``mqtt`` sink.

``connection.py`` holds the broker settings both share and builds ``aiomqtt`` clients;
``codec.py`` turns payloads and MQTT 5 user properties into messages and back.
``aiomqtt`` is imported only when a component connects, not when the registry loads.
"""
