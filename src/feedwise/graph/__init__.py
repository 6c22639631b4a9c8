"""The social graph's algorithms (layer 3): people you may know (``pymk``), creators and
influence, reshare cascades."""
