/* ConstructorModule exports only the C symbols of game_abi.h. */
