from django.apps import AppConfig


class ReconcileConfig(AppConfig):
    name = "reconcile"
    verbose_name = "Reconciliation with the providers' reports"
    default_auto_field = "django.db.models.BigAutoField"
