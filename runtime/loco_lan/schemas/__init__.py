"""JSON Schemas of the files loco.lan writes."""
