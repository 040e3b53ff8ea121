"""What an operator sees of a running process: request ids, logs, metrics, health.

Light on purpose (standard library, prometheus-client, python-json-logger): the slim
bot image imports it, and so do the backend and the trainer.
"""
