"""The engine: measure, stitch, gates, generations and the loop that runs them.

Nothing here imports Textual: the dashboard and the headless CLI both consume the engine's events.
"""
