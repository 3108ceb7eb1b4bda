"""What an operator sees and holds: Prometheus metrics and health (``telemetry``), MQTT events
(``mqtt``), structured logs (``logs``) and the encrypted keystore (``keystore``)."""
