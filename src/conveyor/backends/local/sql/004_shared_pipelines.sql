-- Version 4: a stored pipeline may be shared. Every owner sees and runs a shared pipeline
-- (the examples `conveyor serve --pipelines` loads are); only its owner changes or deletes it.
ALTER TABLE catalog_pipelines ADD COLUMN shared INTEGER NOT NULL DEFAULT 0;
