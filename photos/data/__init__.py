"""Package data: the border GeoJSON for the incident map, its converter and licences."""
