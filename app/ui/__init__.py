"""The web page: static files served by the API itself under ``/ui/`` (see ``site.py``)."""
