"""The patient's situation over time: the timeline, entered events and the complex-situation flag."""
