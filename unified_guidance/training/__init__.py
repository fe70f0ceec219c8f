"""Lightning modules and data modules: the only package that imports lightning."""
