"""Apache Kafka: the ``kafka`` source (consumer group, ack-after-settle offset commits) and
sink (idempotent producer, acks from all in-sync replicas). aiokafka is imported only when a
component is opened, not when the registry loads.
"""
