"""Block stacking (Di Palo et al. 2023): three cubes in a basket, a pick/place end effector, sparse task rewards."""
