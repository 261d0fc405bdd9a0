"""Train job: fine-tune a BERT-family model to tell fake from real news posts."""
