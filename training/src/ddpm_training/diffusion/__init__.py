"""What is learnt around the untouched network: the forward process, what the network predicts, the loss."""
