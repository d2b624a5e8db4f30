"""Airflow hooks of the provider (registered in get_provider_info)."""
