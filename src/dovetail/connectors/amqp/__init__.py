"""RabbitMQ (AMQP 0-9-1): the ``amqp`` source (queue consumer) and sink (confirmed publisher).

``config.py`` holds both config models; ``connection.py`` opens connections and translates
aio-pika's exceptions into ours; ``codec.py`` turns bodies into payloads and back. aio-pika
is imported only when a component is opened, not when the registry loads.
"""
