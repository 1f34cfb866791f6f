"""Admin dashboards in Panel (the admin issue). Reads the Admin API only."""
