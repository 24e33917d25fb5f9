"""Process guardian: continuous health, graded green / yellow / red."""
