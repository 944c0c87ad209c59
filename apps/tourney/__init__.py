"""The Beer Olympics tournament app: tournaments, teams, matches and live leaderboards.

It is tenfold's flagship app and uses only tenfold's public API. For now it
holds the presets of its plan (``apps.tourney.presets``): how long each kind
of cached data lives and how fast clients may call it. They live here, not in
tenfold, because they describe this app's data and traffic.
"""
