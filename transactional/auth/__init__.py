"""The auth service: an OAuth 2.0 / OpenID Connect provider for the paywall.

Other services never import this package; they verify tokens with
`transactional.common.security` against the JWKS this service publishes.
"""
