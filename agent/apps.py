from django.apps import AppConfig


class AgentConfig(AppConfig):
    name = "agent"
    verbose_name = "Agent sessions"
    default_auto_field = "django.db.models.BigAutoField"
