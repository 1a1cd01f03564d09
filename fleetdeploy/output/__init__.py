"""Results as data, and the one place that turns them into tables (people) or JSON (scripts); live progress."""
