"""ARCA (ex-AFIP), Argentina: the client side of WSAA (tickets) and WSFEv1 (the CAE).

Modules, bottom-up: ``errors`` (what the caller must do), ``soap`` (envelopes, the safe parser, the
HTTP call through the outbound guard), ``cms`` (the TRA and its CMS signature), ``wsaa`` (loginCms),
``wsfe`` (the four WSFEv1 operations the agent needs), ``certs`` (certificate checks and the CSR),
then the tenant's credentials and ticket cache (``models``, ``repository``, ``service``,
``endpoints``). It never imports the simulator (``stalela.authority.simulator``): the two are
written apart so that one cannot hide the other's misreading of ARCA.
"""
