"""Planning: turn inventories and policies into reasoned decisions and delete steps."""
