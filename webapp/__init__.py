"""The Django project of Mistral Chat. The Celery app loads with it so that tasks can be enqueued by name."""

from webapp.celery import app as celery_app

__all__ = ["celery_app"]
