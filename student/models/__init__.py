"""The students' architectures: BOW, TextCNN, BiLSTM (one module each, behind `SmallStudent`) and the tiny transformer; the registry that builds and reloads them; word and character vocabularies."""
