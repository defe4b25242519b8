"""Pages for caregivers and welfare staff, served by the collector itself (nothing from a CDN).

    install_web(app, settings)   # called by collector.main.create_app

Routes live in ``routes/`` (login and links, caregiver pages, supervisor map and audit, offline
``/docs``); templates in ``templates/``; CSS, JavaScript and the vendored Leaflet in ``static/``.
"""

from collector.web.app import install_web

__all__ = ["install_web"]
