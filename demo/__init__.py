"""Demo data the project makes itself: a small OULU-NPU-style dataset (see demo/make_demo_data.py).

It exists to show every stage working on a machine without OULU-NPU; it measures nothing about accuracy.
"""
