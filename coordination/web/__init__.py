"""The dashboard's web kernel (issue 10): sessions, CSRF, security headers, templates, sign-in.

Pages of each domain live in ``coordination/<domain>/pages.py`` and call the same service functions as
the API; this package gives them the signed-in ``Actor`` (``deps``), the Jinja2 environment and
``render`` (``templating``) and the shared layout ``templates/base.html``.
"""
