"""Training recipe, dataset reading/import and augmentation. Uses core; never imports pages."""
